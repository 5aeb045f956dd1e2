# postern_add_plugin(NAME SOURCES... [OUTPUT_DIR dir] [NO_INSTALL])
#
# Builds NAME.so the way hot reload needs it:
#  - -fvisibility=hidden: only pst_abi_version and pst_plugin_entry are
#    exported, so two generations never bind to each other's symbols;
#  - -fno-gnu-unique: g++ otherwise emits STB_GNU_UNIQUE symbols for inline
#    statics and template statics, and then dlclose() silently keeps the old
#    image mapped forever;
#  - a linker version script (plugin.map): only the two pst_ symbols are
#    exported, not even std:: typeinfo;
#  - -z defs (not under sanitizers): a plugin needs nothing from the host
#    but the pst_host_v1 table, so an undefined symbol is a bug.
function(postern_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIR" "" ${ARGN})
  add_library(${name} MODULE ${ARG_UNPARSED_ARGUMENTS})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  elseif(DEFINED POSTERN_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${POSTERN_PLUGIN_OUTPUT_DIR})
  endif()
  target_link_libraries(${name} PRIVATE postern::sdk)
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-gnu-unique>)
  set(map ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/plugin.map)
  target_link_options(${name} PRIVATE -Wl,--version-script=${map})
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${map})
  if(NOT POSTERN_SANITIZE)
    target_link_options(${name} PRIVATE -Wl,-z,defs)
  endif()
  if(NOT ARG_NO_INSTALL AND DEFINED POSTERN_PLUGIN_INSTALL_DIR)
    install(TARGETS ${name} LIBRARY DESTINATION ${POSTERN_PLUGIN_INSTALL_DIR})
  endif()
endfunction()

# postern_add_plugin_library(NAME SOURCES...)
#
# A plugin's logic as a static library that both the plugin and the unit
# tests link, compiled as the plugin is (PIC, hidden symbols, no
# STB_GNU_UNIQUE).
function(postern_add_plugin_library name)
  add_library(${name} STATIC ${ARGN})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON CXX_VISIBILITY_PRESET hidden
                                           VISIBILITY_INLINES_HIDDEN ON)
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-gnu-unique>)
  target_link_libraries(${name} PUBLIC postern::sdk)
endfunction()
