"""``python -m chatservice.client``: the ``chatservice-client`` command."""

import sys

from chatservice.client.command import main

if __name__ == "__main__":
    sys.exit(main())
