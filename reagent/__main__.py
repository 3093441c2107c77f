import sys

from reagent.cli import main

sys.exit(main())
