from ensemble.cli import main

main()
