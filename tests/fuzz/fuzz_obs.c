/*
 * libFuzzer target: a host's observation output (what the observation script
 * printed, as received) through the parser, the diff against a fixed desired
 * state, and the three renderers (tests/fuzz/obs_plan.h). Every byte is the
 * host's: any input must give a plan or an unknown host — never a crash, a
 * leak or a hang.
 */
#include <stddef.h>
#include <stdint.h>

#include "tests/fuzz/obs_plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	obs_plan_run((const char *)data, size);
	return 0;
}
