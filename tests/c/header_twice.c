/*
 * Includes the public header twice in one translation unit and uses a few
 * of its types and constants. tests/c_host.rs compiles this as C99, C11
 * and C++11 with -Wall -Wextra -Werror -pedantic: the include guard holds
 * and the header is valid in each language.
 */
#include "online_desktop.h"
#include "online_desktop.h"

#include <string.h>

static od_result use_the_table(const od_plugin_api *api, od_plugin *plugin) {
    od_prerequisite_list *list = 0;
    od_result result = api->plugin_check_prerequisites(plugin, OD_CHECK_FLAG_REFRESH, &list);
    if (result == OD_RESULT_OK) {
        api->prerequisite_list_free(list);
    }
    return result;
}

int main(void) {
    od_host_api host;
    memset(&host, 0, sizeof host);
    host.struct_size = (uint32_t)sizeof host;
    host.abi_major = OD_VERSION_MAJOR;
    host.log_level = OD_LOG_LEVEL_INFO;
    (void)use_the_table;
    return host.abi_major == OD_VERSION_MAJOR ? OD_RESULT_OK : OD_RESULT_ABI_VERSION;
}
