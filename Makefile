# The two commands a newcomer runs: `make demo` and `make test`. Both set the environment up first.
.PHONY: setup test demo clean

setup:
	@bash scripts/bootstrap.sh

test: setup
	@bash scripts/run-tests.sh

demo: setup
	@bash scripts/demo.sh

clean:
	rm -rf build install log
