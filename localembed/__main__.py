from localembed.cli import main

main()
