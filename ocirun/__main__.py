import sys

from ocirun.cli.main import main

sys.exit(main())
