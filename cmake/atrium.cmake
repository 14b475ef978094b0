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

# atrium_server_fixture(NAME fixture SCRIPT script [START_TIMEOUT s])
# A ctest fixture around scripts/<script> start|stop ${CMAKE_BINARY_DIR}/<fixture>: tests
# <fixture>_start and <fixture>_stop start a throwaway server on loopback before the tests that
# declare FIXTURES <fixture> and stop it after; the script writes the server's URL to
# ${CMAKE_BINARY_DIR}/<fixture>/url (read it with atrium::testing::FixtureUrl).
function(atrium_server_fixture)
  cmake_parse_arguments(F "" "NAME;SCRIPT;START_TIMEOUT" "" ${ARGN})
  if(NOT ATRIUM_BUILD_TESTS)
    return()
  endif()
  if(NOT F_START_TIMEOUT)
    set(F_START_TIMEOUT 60)
  endif()
  set(dir ${CMAKE_BINARY_DIR}/${F_NAME})
  add_test(NAME ${F_NAME}_start COMMAND ${CMAKE_SOURCE_DIR}/scripts/${F_SCRIPT} start ${dir})
  set_tests_properties(${F_NAME}_start PROPERTIES FIXTURES_SETUP ${F_NAME}
    TIMEOUT ${F_START_TIMEOUT})
  add_test(NAME ${F_NAME}_stop COMMAND ${CMAKE_SOURCE_DIR}/scripts/${F_SCRIPT} stop ${dir})
  set_tests_properties(${F_NAME}_stop PROPERTIES FIXTURES_CLEANUP ${F_NAME} TIMEOUT 60)
endfunction()
