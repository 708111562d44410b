# Helpers shared by every CMakeLists.txt of the project.

# hl_layer_include(FOLDER OUT_VAR): the include directory of src/FOLDER alone:
# ${PROJECT_BINARY_DIR}/layers/FOLDER holds one link, FOLDER -> src/FOLDER, so
# that "FOLDER/x.h" resolves there and nothing else of src/ does. A library sees
# its own folder and those of the libraries it declares (PUBLIC, transitively):
# an include of a folder it does not depend on fails to compile. That is how the
# layering (src/CMakeLists.txt) is enforced.
function(hl_layer_include folder out)
  set(dir ${PROJECT_BINARY_DIR}/layers/${folder})
  if(NOT EXISTS ${dir}/${folder})
    file(MAKE_DIRECTORY ${dir})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/src/${folder} ${dir}/${folder} SYMBOLIC)
  endif()
  set(${out} ${dir} PARENT_SCOPE)
endfunction()

# hl_library(NAME SOURCES ... DEPS ...): a small static library for the concern of
# the folder it is declared in (src/FOLDER), with the project's warnings; its
# headers are included as "FOLDER/x.h" (see hl_layer_include).
function(hl_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  get_filename_component(folder ${CMAKE_CURRENT_SOURCE_DIR} NAME)
  hl_layer_include(${folder} include_dir)
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${include_dir})
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
