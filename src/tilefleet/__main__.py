from tilefleet.cli import main

main()
