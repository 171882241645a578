/* numpy_api.c: the one definition of the NumPy C API table the extension's files share. */
#define BPROP_CORE_MODULE /* core.h: this file defines the table, the others refer to it */
#include "core.h"

int bp_py_import_numpy(void)
{
    import_array1(-1);
    return 0;
}
