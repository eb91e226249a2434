import sys
def test_x():
    print([k for k in sys.modules if 'conftest' in k]); print([p for p in sys.path if 'work' in p])
