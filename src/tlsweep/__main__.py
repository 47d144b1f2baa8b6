from tlsweep.cli import main

main()
