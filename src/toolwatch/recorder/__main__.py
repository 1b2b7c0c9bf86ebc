from toolwatch.recorder.main import main

raise SystemExit(main())
