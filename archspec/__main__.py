from archspec.entry import main

main()
