"""``python -m tltf.cli``: the ``tltf`` command."""

import sys

from tltf.cli.main import main

sys.exit(main())
