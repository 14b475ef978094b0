# The libFuzzer targets, one list for both places that need it: fuzz/CMakeLists.txt (which must
# define each of them and builds them all through the `atrium_fuzzers` target that the `fuzz` build
# preset names) and the top-level CMakeLists.txt (which smoke-runs each one in ctest).
set(ATRIUM_FUZZ_TARGETS
  http_request_fuzz
  http_response_fuzz
  json_error_fuzz
  wal_record_fuzz
  jwt_fuzz
  tokenizer_fuzz
  tokenizer_json_fuzz
  safetensors_fuzz
  track_filter_fuzz
  aws_eventstream_fuzz)
