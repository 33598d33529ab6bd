# Sourced by scripts/*: create .venv with the project, its dev tools and the spark extra
# (pyspark: the --engine spark tests) when missing or stale.
# The first run takes a minute or two (pip downloads polars, scikit-learn, duckdb, ...): say so
# on stderr, so that nobody waits in front of a silent terminal.
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt .venv/.installed ]; then
  if [ -x .venv/bin/python ]; then
    echo "pyproject.toml changed: updating .venv ..." >&2
  else
    echo "first run: creating .venv in $(pwd) (a minute or two, once) ..." >&2
    python3 -m venv .venv
  fi
  echo "installing analyzer and its dependencies (polars, scikit-learn, duckdb, ...) ..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev,spark]'
  touch .venv/.installed
  echo "ready: .venv (activate it with: source .venv/bin/activate)" >&2
fi
