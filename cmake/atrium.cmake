# Shared build helpers for Atrium modules.

# Warnings for Atrium's own code (not third-party headers).
function(atrium_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
endfunction()

# atrium_test(NAME name SOURCES a_test.cc ... LIBS lib ... [LABELS l ...] [FIXTURES f ...])
# Builds one GoogleTest binary and registers it with ctest (one ctest entry per binary keeps
# the suite start-up cost low; gtest's own output lists each case).
function(atrium_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;FIXTURES" ${ARGN})
  if(NOT ATRIUM_BUILD_TESTS)
    return()
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  atrium_warnings(${T_NAME})
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} --gtest_brief=1)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "ATRIUM_TEST_TMPDIR=${CMAKE_BINARY_DIR}/test-tmp;ATRIUM_SOURCE_DIR=${CMAKE_SOURCE_DIR};ATRIUM_BINARY_DIR=${CMAKE_BINARY_DIR}")
  if(T_LABELS)
    set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}")
  endif()
  if(T_FIXTURES)
    set_tests_properties(${T_NAME} PROPERTIES FIXTURES_REQUIRED "${T_FIXTURES}")
  endif()
endfunction()
