"""End to end: real processes, multi-worker servers, a browser, real apps, installs."""
