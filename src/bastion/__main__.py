"""``python -m bastion``: the same CLI as the ``bastion`` script."""

from bastion.cli import main

main()
