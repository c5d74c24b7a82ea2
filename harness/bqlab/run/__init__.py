"""Running scenarios and reporting them: the runner and its state, step handlers, artifact
directories, reports (JSON, JUnit, KTAP, HTML), repeats, shards and merges, validate and
bisect."""
