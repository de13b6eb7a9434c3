import sys
from pathlib import Path

# tests/builders.py is imported as `builders` by the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
