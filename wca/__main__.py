from wca.main import main

main()
