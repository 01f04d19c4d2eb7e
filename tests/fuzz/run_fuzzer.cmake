# Runs one libFuzzer target for a bounded time over a fresh copy of its seed corpus.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
file(GLOB seeds ${SEEDS}/*)
file(COPY ${seeds} DESTINATION ${WORK})
execute_process(COMMAND ${EXE} -max_total_time=20 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 ${WORK}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzzer ${EXE} found a problem (exit ${rc})")
endif()
