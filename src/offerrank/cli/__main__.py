from offerrank.cli.main import entry

entry()
