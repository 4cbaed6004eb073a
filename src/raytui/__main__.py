from raytui.cli import main

raise SystemExit(main())
