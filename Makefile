# Plain-C targets for the taskdemo core (csrc/td_*.c) and its test suite
# (csrc/tests/).  The Python extension is built by setup.py, not here.
#
#   make test-c     -O2 build with -Werror, run every test
#   make asan       AddressSanitizer + UBSan, at -O1 and at -O2
#   make tsan       ThreadSanitizer, at -O1 and at -O2
#   make valgrind   memcheck of the test-c build
#   make clean
#
# Each test runs in its own forked process with a timeout (run_tests.c);
# `build/ctest/run_tests NAME` runs a single test, `--list` lists them.
# Every build of the suite is one gcc command over all sources, so a
# changed header or flag rebuilds what it must; outputs go under build/.

ifeq ($(origin CC),default)
CC := gcc
endif

BUILD := build

# The C core: only td_*.c; _taskdemo.c and py_*.c include Python.h.
CORE_SRCS := $(sort $(wildcard csrc/td_*.c))
TEST_SRCS := $(sort $(wildcard csrc/tests/*.c))
DEPS := $(CORE_SRCS) $(TEST_SRCS) $(wildcard csrc/td_*.h) \
	$(wildcard csrc/tests/*.h) Makefile

BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -pthread \
	-Icsrc
ASAN_CFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
TSAN_CFLAGS := -fsanitize=thread -fno-omit-frame-pointer

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
TSAN_SUPP := $(wildcard csrc/tests/tsan.supp)
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 \
	$(if $(TSAN_SUPP),suppressions=$(abspath $(TSAN_SUPP)))"

VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite
# valgrind runs threads one at a time and far slower: a longer timeout.
VALGRIND_ENV := TD_TEST_TIMEOUT=300

# $(call test_binary,DIR,FLAGS): build/DIR/run_tests built with FLAGS.
define test_binary
$(BUILD)/$(1)/run_tests: $$(DEPS)
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_CFLAGS) $(2) $$(CORE_SRCS) $$(TEST_SRCS) -o $$@
endef

$(eval $(call test_binary,ctest,-O2))
$(eval $(call test_binary,asan-O1,-O1 $(ASAN_CFLAGS)))
$(eval $(call test_binary,asan-O2,-O2 $(ASAN_CFLAGS)))
$(eval $(call test_binary,tsan-O1,-O1 $(TSAN_CFLAGS)))
$(eval $(call test_binary,tsan-O2,-O2 $(TSAN_CFLAGS)))

.PHONY: test-c asan tsan valgrind clean

test-c: $(BUILD)/ctest/run_tests
	$(BUILD)/ctest/run_tests

# Both optimisation levels run even if the first fails; either fails the
# target.
asan: $(BUILD)/asan-O1/run_tests $(BUILD)/asan-O2/run_tests
	@rc=0; \
	for o in O1 O2; do \
		echo "== asan -$$o"; \
		$(ASAN_ENV) $(BUILD)/asan-$$o/run_tests || rc=1; \
	done; \
	exit $$rc

tsan: $(BUILD)/tsan-O1/run_tests $(BUILD)/tsan-O2/run_tests
	@rc=0; \
	for o in O1 O2; do \
		echo "== tsan -$$o"; \
		$(TSAN_ENV) $(BUILD)/tsan-$$o/run_tests || rc=1; \
	done; \
	exit $$rc

valgrind: $(BUILD)/ctest/run_tests
	$(VALGRIND_ENV) $(VALGRIND) $(BUILD)/ctest/run_tests

clean:
	rm -rf $(BUILD)/ctest $(BUILD)/asan-O1 $(BUILD)/asan-O2 \
		$(BUILD)/tsan-O1 $(BUILD)/tsan-O2
