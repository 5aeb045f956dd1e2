/* A shared object that is not a Postern plugin: it exports no
 * pst_abi_version. */
int not_a_plugin_answer(void) { return 42; }
