"""Developer tools of the medins project: not part of the installed product."""
