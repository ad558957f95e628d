from consumers.projector.service import main

main()
