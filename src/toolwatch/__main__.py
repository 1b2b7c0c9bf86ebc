from toolwatch.cli import main

raise SystemExit(main())
