# The two commands a newcomer runs: `make demo` and `make test`. Both set the environment up first.
# The scripts find the checkout themselves; HERE lets `make -f path/to/Makefile` work from elsewhere.
HERE := $(dir $(lastword $(MAKEFILE_LIST)))
.PHONY: setup test demo clean

setup:
	@bash "$(HERE)scripts/bootstrap.sh"

test: setup
	@bash "$(HERE)scripts/run-tests.sh"

demo: setup
	@bash "$(HERE)scripts/demo.sh"

clean:
	cd "$(HERE)" && rm -rf build install log
