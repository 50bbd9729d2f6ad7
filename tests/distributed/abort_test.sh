#!/usr/bin/env bash
# abort_test.sh MPIEXEC ABORT_ON_ERROR: 2 ranks, one of which throws while the other waits in a barrier. The
# job must end by itself (not by the timeout), with a non-zero exit and the thrower's message.
set -uo pipefail
output=$(timeout 60 "$1" --allow-run-as-root --oversubscribe -np 2 "$2" 2>&1)
code=$?
echo "$output"
if [ "$code" -eq 124 ]; then echo "FAIL: the job hung until the timeout"; exit 1; fi
if [ "$code" -eq 0 ]; then echo "FAIL: the job exited 0"; exit 1; fi
if ! grep -q "rank 1 of 2: the last rank gives up on purpose" <<<"$output"; then
  echo "FAIL: the thrower's message is missing"; exit 1
fi
echo "PASS: exit code $code with the message"
