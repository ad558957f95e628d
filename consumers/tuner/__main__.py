from consumers.tuner.service import main

main()
