# Helpers shared by every CMakeLists.txt of the project.

# hl_library(NAME SOURCES ... DEPS ...): a small static library for one concern,
# with the project's warnings and src/ as its include root ("net/checksum.h").
function(hl_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE hl_warnings)
endfunction()

# hl_test(NAME SOURCES ... DEPS ...): one GoogleTest executable, registered with ctest.
function(hl_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main hl_warnings)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/cpp)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60)
endfunction()
