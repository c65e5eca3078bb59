#pragma once
// Fixture for the `layering_violation_detected` test: core/ must not include agents/.
#include "agents/agent.h"
