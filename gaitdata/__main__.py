from gaitdata.cli import main

main()
