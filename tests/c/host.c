/*
 * A minimal host program in C11 that drives the Online Desktop plugin the
 * way the real ERP does, through include/online_desktop.h only:
 *
 *   host <plugin-library> <licence-file> <service-url> <data-dir>
 *
 * It loads the library with dlopen, looks up nothing but od_entry, checks
 * the ABI version, answers the plugin's host-channel requests from static
 * JSON (the licence document comes from <licence-file>), runs the licence
 * check and the prerequisites (waiting for request_pump and then pumping on
 * its own main thread, its "UI thread"), then the synchronisation calls of
 * ABI 1.1 (status, history, connection, start against the service, stop,
 * pumping until the engine says it stopped), frees everything, destroys the
 * plugin and unloads the library.
 *
 * <service-url> must refuse connections, so that the reachability row ends
 * FAILED and synchronisation keeps retrying; every other row must pass.
 * <data-dir> is an empty folder for the plugin's state. Exit status 0 only
 * when every expectation held; otherwise each failed one is printed to
 * stderr. Driven by tests/c_host.rs, also under valgrind.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "online_desktop.h"

/* The entry point's type; the header declares the function, not a type.
 * Callbacks and entry points use the header's calling convention, OD_CALL. */
typedef od_result (OD_CALL *entry_fn)(uint32_t host_abi_major, uint32_t host_abi_minor,
                              const od_plugin_api **out_api);

_Static_assert(sizeof(void *) == sizeof(entry_fn),
               "dlsym's object pointer must hold a function pointer");

/* How long to wait for the plugin's request_pump (generous: valgrind). */
#define PUMP_WAIT_SECONDS 120

/* How long to wait for a synchronisation state (generous: valgrind). */
#define SYNC_WAIT_SECONDS 120

/* Whether the plugin's table is long enough to hold `field`: a plugin of an
 * older minor version has a shorter table. */
#define OD_API_HAS(api, field) \
    ((api)->struct_size >= offsetof(od_plugin_api, field) + sizeof((api)->field))

/* The company the static answers describe; tests/support/fixtures.rs signs
 * a licence for the same licence number and company. */
#define LICENCE_NUMBER "OD-TEST-0001"
#define COMPANY_ID "c-test-1"
#define COMPANY_NAME "Fjordline Regnskap AS"

static int failed_expectations;

static void expect(int holds, const char *format, ...) {
    if (holds) {
        return;
    }
    va_list args;
    va_start(args, format);
    fputs("EXPECTATION FAILED: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    failed_expectations++;
}

/* ------------------------------------------------------------ host state */

typedef struct {
    pthread_t ui_thread;
    pthread_mutex_t lock;
    pthread_cond_t pump_wanted;
    /* Guarded by lock: request_pump runs on the plugin's threads. */
    int pump_requested;
    int pump_requests;
    int pump_requests_on_ui_thread;
    int log_records;
    /* UI thread only. */
    int events;
    int events_off_ui_thread;
    int user_data_frees;
    /* OD_EVENT_SYNC_STATE events, and the state of the last one. */
    int sync_state_events;
    char sync_state[32];
    /* Bit (1 << OD_SYNC_*) for every state an event reported. */
    unsigned sync_states_seen;
    int sync_progress_events;
    /* The answer to licence.documents, built from the licence file. */
    char *licence_answer;
} host_state;

typedef struct {
    const char *method;
    const char *answer;
} static_answer;

static const static_answer ANSWERS[] = {
    {"host.info",
     "{\"host_name\": \"C host\", \"host_version\": \"1.0\", \"evaluation_installation\": false,"
     " \"computer\": {\"id\": \"pc-1\", \"name\": \"PC-1\", \"holds_system_database\": true}}"},
    {"system.bindings",
     "{\"bindings\": [{\"add_on\": \"online-desktop\", \"licence_number\": \"" LICENCE_NUMBER
     "\", \"company_id\": \"" COMPANY_ID "\"}]}"},
    {"system.companies",
     "{\"companies\": [{\"id\": \"" COMPANY_ID "\", \"name\": \"" COMPANY_NAME
     "\", \"is_sample\": false, \"online_desktop_connected\": false}]}"},
    {"company.identity",
     "{\"id\": \"" COMPANY_ID "\", \"name\": \"" COMPANY_NAME "\", \"is_sample\": false}"},
    {"company.registration",
     "{\"name\": \"" COMPANY_NAME "\", \"street\": \"Storgata 1\", \"postcode\": \"0155\","
     " \"city\": \"Oslo\", \"country\": \"Norway\", \"phone\": \"+47 22 00 00 00\","
     " \"email\": \"post@fjordline.example\", \"organisation_number\": \"999 888 777\"}"},
    {"user.current",
     "{\"username\": \"admin\", \"is_super_user\": true, \"employee\": {\"id\": \"7\","
     " \"name\": \"Kari Nordmann\", \"email\": \"kari@fjordline.example\"}}"},
    {"sessions.active", "{\"users\": [], \"integrations\": []}"},
    /* A tiny declaration for synchronisation (docs/HOST_CHANNEL.md). */
    {"schema.entities",
     "{\"version\": 1, \"entities\": [{\"name\": \"contacts\", \"title\": \"Contacts\","
     " \"online_create\": true, \"fields\": [{\"name\": \"name\", \"type\": \"text\","
     " \"required\": true, \"online\": \"read_write\", \"direction\": \"two_way\"}]}]}"},
    {"changes.position", "{\"seq\": 0}"},
    {"records.count", "{\"count\": 0}"},
    {"records.page", "{\"records\": [], \"done\": true}"},
    {"sync.block", "{\"blocked\": true, \"reason\": \"first sync\", \"blocked_at\": \"now\"}"},
    {"sync.unblock", "{\"blocked\": false}"},
};

/* The OD_SYNC_* state named `name`, or -1. */
static int sync_state_of(const char *name) {
    static const char *const NAMES[] = {"not_connected", "stopped", "scheduled",
                                        "starting",      "first_sync", "running",
                                        "retrying",      "failed",  "stopping"};
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
        if (strcmp(name, NAMES[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* ------------------------------------------------------------- callbacks */

static int32_t write_text(const od_host_response *response, const char *text, size_t len) {
    return response->write(response->context, (const uint8_t *)text, len);
}

/* [thread-safe] Answers from the static table; the answer goes out in two
 * writes, which the plugin joins. */
static int32_t OD_CALL host_request(void *user_data, const od_host_request *request,
                            od_host_response *response) {
    host_state *host = user_data;
    if (request == NULL || response == NULL || request->method == NULL ||
        response->write == NULL) {
        return 1;
    }
    const char *answer = NULL;
    if (strcmp(request->method, "licence.documents") == 0) {
        answer = host->licence_answer;
    }
    for (size_t i = 0; answer == NULL && i < sizeof ANSWERS / sizeof ANSWERS[0]; i++) {
        if (strcmp(request->method, ANSWERS[i].method) == 0) {
            answer = ANSWERS[i].answer;
        }
    }
    if (answer == NULL) {
        static const char unknown[] = "this host does not know the method";
        write_text(response, unknown, sizeof unknown - 1);
        return 1;
    }
    size_t len = strlen(answer);
    size_t half = len / 2;
    if (write_text(response, answer, half) != 0 ||
        write_text(response, answer + half, len - half) != 0) {
        return 1;
    }
    return 0;
}

/* [thread-safe] Only schedules: the main thread pumps. */
static int32_t OD_CALL host_request_pump(void *user_data) {
    host_state *host = user_data;
    pthread_mutex_lock(&host->lock);
    host->pump_requested = 1;
    host->pump_requests++;
    if (pthread_equal(pthread_self(), host->ui_thread)) {
        host->pump_requests_on_ui_thread++;
    }
    pthread_cond_signal(&host->pump_wanted);
    pthread_mutex_unlock(&host->lock);
    return 0;
}

static const char *level_name(od_log_level level) {
    switch (level) {
    case OD_LOG_LEVEL_ERROR: return "ERROR";
    case OD_LOG_LEVEL_WARN: return "WARN";
    case OD_LOG_LEVEL_INFO: return "INFO";
    case OD_LOG_LEVEL_DEBUG: return "DEBUG";
    case OD_LOG_LEVEL_TRACE: return "TRACE";
    default: return "?";
    }
}

/* [thread-safe] */
static int32_t OD_CALL host_log(void *user_data, const od_log_record *record) {
    host_state *host = user_data;
    pthread_mutex_lock(&host->lock);
    host->log_records++;
    pthread_mutex_unlock(&host->lock);
    printf("log [%s] %s: %s\n", level_name(record->level), record->target, record->message);
    return 0;
}

/* [ui-thread] */
static int32_t OD_CALL host_on_event(void *user_data, const od_event *event) {
    host_state *host = user_data;
    host->events++;
    if (!pthread_equal(pthread_self(), host->ui_thread)) {
        host->events_off_ui_thread++;
    }
    if (event->kind == OD_EVENT_SYNC_STATE) {
        /* {"state": s, "error": s | null}: the state's word, by hand. */
        host->sync_state_events++;
        host->sync_state[0] = '\0';
        const char *payload = event->payload_json != NULL ? event->payload_json : "";
        const char *state = strstr(payload, "\"state\":\"");
        if (state != NULL) {
            state += strlen("\"state\":\"");
            size_t len = strcspn(state, "\"");
            if (len < sizeof host->sync_state) {
                memcpy(host->sync_state, state, len);
                host->sync_state[len] = '\0';
            }
        }
        int code = sync_state_of(host->sync_state);
        expect(code >= 0, "a known sync state in %s", payload);
        if (code >= 0) {
            host->sync_states_seen |= 1u << (unsigned)code;
        }
        printf("event 2 (sync state %s): %s\n", host->sync_state, payload);
        return 0;
    }
    if (event->kind == OD_EVENT_SYNC_PROGRESS) {
        host->sync_progress_events++;
    }
    printf("event %u%s\n", (unsigned)event->kind,
           event->kind == OD_EVENT_PREREQUISITES_CHANGED ? " (prerequisites changed)" : "");
    return 0;
}

static void OD_CALL host_user_data_free(void *user_data) {
    host_state *host = user_data;
    host->user_data_frees++;
}

/* Waits until the plugin asked for a pump; 0 on timeout. */
static int wait_for_pump_request(host_state *host, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&host->lock);
    while (!host->pump_requested) {
        if (pthread_cond_timedwait(&host->pump_wanted, &host->lock, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    int requested = host->pump_requested;
    host->pump_requested = 0;
    pthread_mutex_unlock(&host->lock);
    return requested;
}

/* ------------------------------------------------------------ utilities */

/* The whole file as a NUL-terminated string; NULL on failure. */
static char *read_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        return NULL;
    }
    size_t size = 0;
    size_t capacity = 4096;
    char *text = malloc(capacity);
    while (text != NULL) {
        size += fread(text + size, 1, capacity - size - 1, file);
        if (size < capacity - 1) {
            break;
        }
        capacity *= 2;
        char *grown = realloc(text, capacity);
        if (grown == NULL) {
            free(text);
        }
        text = grown;
    }
    int failed = ferror(file);
    fclose(file);
    if (text == NULL || failed) {
        free(text);
        return NULL;
    }
    text[size] = '\0';
    return text;
}

/* {"documents": ["<document as a JSON string>"]}; NULL when out of memory. */
static char *licence_answer(const char *document) {
    static const char head[] = "{\"documents\": [\"";
    static const char tail[] = "\"]}";
    /* Each byte grows to at most six ("\u001f"). */
    size_t capacity = sizeof head + 6 * strlen(document) + sizeof tail;
    char *json = malloc(capacity);
    if (json == NULL) {
        return NULL;
    }
    char *out = json;
    memcpy(out, head, sizeof head - 1);
    out += sizeof head - 1;
    for (const unsigned char *in = (const unsigned char *)document; *in != '\0'; in++) {
        if (*in == '"' || *in == '\\') {
            *out++ = '\\';
            *out++ = (char)*in;
        } else if (*in < 0x20) {
            out += sprintf(out, "\\u%04x", (unsigned)*in);
        } else {
            *out++ = (char)*in;
        }
    }
    memcpy(out, tail, sizeof tail);
    return json;
}

/* A message read with the documented size-then-text pattern. */
typedef od_result (*message_fn)(const od_plugin_api *api, const od_plugin *plugin, char *buf,
                                size_t size, size_t *len);

static od_result last_error_of(const od_plugin_api *api, const od_plugin *plugin, char *buf,
                               size_t size, size_t *len) {
    (void)plugin;
    return api->last_error(buf, size, len);
}

static od_result errmsg_of(const od_plugin_api *api, const od_plugin *plugin, char *buf,
                           size_t size, size_t *len) {
    return api->plugin_errmsg(plugin, buf, size, len);
}

/* The message, or NULL; the caller frees it. */
static char *read_message(const od_plugin_api *api, const od_plugin *plugin, message_fn read) {
    size_t len = 0;
    od_result result = read(api, plugin, NULL, 0, &len);
    if (result != OD_RESULT_OK && result != OD_RESULT_BUFFER_TOO_SMALL) {
        return NULL;
    }
    char *message = malloc(len + 1);
    if (message == NULL) {
        return NULL;
    }
    size_t again = 0;
    result = read(api, plugin, message, len + 1, &again);
    expect(result == OD_RESULT_OK && again == len,
           "the message is read with the length asked for first (result %u, %zu vs %zu)",
           (unsigned)result, again, len);
    return message;
}

static const char *state_name(od_check_state state) {
    switch (state) {
    case OD_CHECK_FAILED: return "FAILED";
    case OD_CHECK_PASSED: return "PASSED";
    case OD_CHECK_PENDING: return "PENDING";
    default: return "?";
    }
}

static void print_prerequisites(const od_prerequisite_list *list) {
    printf("prerequisites: can_connect=%u pending=%u\n", (unsigned)list->can_connect,
           (unsigned)list->pending);
    for (size_t i = 0; i < list->count; i++) {
        const od_prerequisite *row = list->items[i];
        printf("prerequisite %s: %s%s - %s\n", row->id, state_name(row->state),
               row->blocking ? "" : " (warning only)", row->detail);
    }
}

/* The final list: everything passes but the refused online service. */
static void check_final_prerequisites(const od_prerequisite_list *list, const char *service_url) {
    expect(list->struct_size >= sizeof(od_prerequisite_list), "the list is complete");
    expect(list->count == 8, "8 prerequisites, got %zu", list->count);
    expect(!list->pending, "nothing pending after the event");
    expect(!list->can_connect, "no Connect while the service cannot be reached");
    for (size_t i = 0; i < list->count; i++) {
        const od_prerequisite *row = list->items[i];
        if (strcmp(row->id, "service_reachable") == 0) {
            expect(row->state == OD_CHECK_FAILED, "service_reachable FAILED, got %s",
                   state_name(row->state));
            expect(strstr(row->detail, service_url) != NULL,
                   "the reachability message names %s: %s", service_url, row->detail);
        } else {
            expect(row->state == OD_CHECK_PASSED, "%s PASSED, got %s", row->id,
                   state_name(row->state));
        }
        expect(row->title[0] != '\0' && row->fix_location[0] != '\0', "%s is described",
               row->id);
    }
}

/* ------------------------------------------- synchronisation (ABI 1.1) */

/* Pumps on the UI thread until an OD_EVENT_SYNC_STATE event has reported
 * `state` (one of OD_SYNC_*); 0 when it did not within SYNC_WAIT_SECONDS. */
static int pump_until_sync_state(const od_plugin_api *api, od_plugin *plugin, host_state *host,
                                 int state) {
    time_t deadline = time(NULL) + SYNC_WAIT_SECONDS;
    while ((host->sync_states_seen & (1u << (unsigned)state)) == 0) {
        time_t now = time(NULL);
        if (now >= deadline) {
            return 0;
        }
        if (wait_for_pump_request(host, (int)(deadline - now))) {
            od_result result = api->plugin_pump(plugin);
            expect(result == OD_RESULT_OK, "od_plugin_pump: %s", api->result_text(result));
        }
    }
    return 1;
}

/* The status, printed; NULL on failure. Free it with sync_status_free. */
static od_sync_status *sync_status(const od_plugin_api *api, od_plugin *plugin) {
    od_sync_status *status = NULL;
    od_result result = api->plugin_sync_status(plugin, &status);
    expect(result == OD_RESULT_OK && status != NULL, "od_plugin_sync_status: %s",
           api->result_text(result));
    if (status == NULL) {
        return NULL;
    }
    expect(status->struct_size >= sizeof(od_sync_status), "the status is complete");
    expect(status->state_name != NULL, "the status names its state");
    printf("sync status: %s (%u), first sync done %u, error %u: %s\n",
           status->state_name != NULL ? status->state_name : "(none)", (unsigned)status->state,
           (unsigned)status->first_sync_done, (unsigned)status->error_code,
           status->error != NULL ? status->error : "(none)");
    return status;
}

static void run_sync(const od_plugin_api *api, od_plugin *plugin, host_state *host,
                     const char *service_url) {
    if (!(OD_API_HAS(api, plugin_connection_set) && OD_API_HAS(api, plugin_sync_start) &&
          OD_API_HAS(api, plugin_sync_stop) && OD_API_HAS(api, plugin_sync_schedule) &&
          OD_API_HAS(api, plugin_sync_notify) && OD_API_HAS(api, plugin_sync_status) &&
          OD_API_HAS(api, sync_status_free) && OD_API_HAS(api, plugin_sync_history) &&
          OD_API_HAS(api, text_free))) {
        expect(0, "the plugin's table has the synchronisation entries of ABI 1.1");
        return;
    }

    /* Not connected yet: nothing known, nothing to start. */
    od_sync_status *status = sync_status(api, plugin);
    if (status != NULL) {
        expect(status->state == OD_SYNC_NOT_CONNECTED, "not connected, got %u",
               (unsigned)status->state);
        expect(strcmp(status->state_name, "not_connected") == 0, "named not_connected");
        expect(status->last_success == NULL && status->scheduled_at == NULL &&
                   status->error == NULL && status->progress_entity == NULL,
               "no times, error or progress yet");
        expect(status->progress_seconds_left == -1, "no time left known");
        api->sync_status_free(status);
    }

    od_text *history = NULL;
    od_result result = api->plugin_sync_history(plugin, &history);
    expect(result == OD_RESULT_OK && history != NULL, "od_plugin_sync_history: %s",
           api->result_text(result));
    if (history != NULL) {
        expect(history->struct_size >= sizeof(od_text), "the text is complete");
        expect(history->len == strlen(history->text), "len is the text's length");
        expect(history->len >= 2 && history->text[0] == '{' &&
                   history->text[history->len - 1] == '}',
               "the history is a JSON object: %s", history->text);
        expect(strstr(history->text, "\"runs\":[]") != NULL &&
                   strstr(history->text, "\"conflicts\":[]") != NULL,
               "no runs and no conflicts yet: %s", history->text);
        printf("sync history: %s\n", history->text);
        api->text_free(history);
    }

    result = api->plugin_sync_start(plugin, OD_SYNC_FLAG_NOW);
    char *message = read_message(api, plugin, errmsg_of);
    printf("sync start without a connection: %s: %s\n", api->result_text(result),
           message != NULL ? message : "(no message)");
    expect(result == OD_RESULT_BAD_STATE, "no start without a connection");
    expect(message != NULL && strstr(message, "not connected") != NULL,
           "the message says the company is not connected");
    free(message);

    /* Connected: stopped. */
    char connection[1024];
    int written = snprintf(
        connection, sizeof connection,
        "{\"service_url\": \"%s\", \"company_id\": \"6f1c1a3e-8d2b-4c55-9a57-0d2c1e4b7a11\","
        " \"computer_id\": \"pc-1\", \"device_id\": \"0b9d3c57-2f0e-4d8a-a3c1-5e6f7a8b9c0d\","
        " \"access_token\": \"c-host-access\", \"access_expires_at\": \"2099-01-01T00:00:00Z\","
        " \"refresh_token\": \"c-host-refresh\"}",
        service_url);
    expect(written > 0 && (size_t)written < sizeof connection, "the connection fits");
    result = api->plugin_connection_set(plugin, connection);
    expect(result == OD_RESULT_OK, "od_plugin_connection_set: %s", api->result_text(result));
    status = sync_status(api, plugin);
    if (status != NULL) {
        expect(status->state == OD_SYNC_STOPPED, "stopped once connected, got %u",
               (unsigned)status->state);
        api->sync_status_free(status);
    }

    /* Started against a service that refuses connections: it retries. */
    result = api->plugin_sync_start(plugin, OD_SYNC_FLAG_NOW);
    expect(result == OD_RESULT_OK, "od_plugin_sync_start: %s", api->result_text(result));
    result = api->plugin_sync_notify(plugin);
    expect(result == OD_RESULT_OK, "od_plugin_sync_notify: %s", api->result_text(result));
    expect(pump_until_sync_state(api, plugin, host, OD_SYNC_RETRYING),
           "the state retrying within %d s", SYNC_WAIT_SECONDS);
    status = sync_status(api, plugin);
    if (status != NULL) {
        expect(status->error_code == OD_RESULT_SERVICE_UNREACHABLE,
               "the service is unreachable, got %u", (unsigned)status->error_code);
        expect(status->error != NULL && strstr(status->error, service_url) != NULL,
               "the error names %s", service_url);
        if (status->error != NULL) {
            printf("sync error: %s\n", status->error);
        }
        api->sync_status_free(status);
    }

    /* Stopped: the engine says so through the pump. */
    result = api->plugin_sync_stop(plugin);
    expect(result == OD_RESULT_OK, "od_plugin_sync_stop: %s", api->result_text(result));
    expect(pump_until_sync_state(api, plugin, host, OD_SYNC_STOPPED),
           "the state stopped within %d s", SYNC_WAIT_SECONDS);
    status = sync_status(api, plugin);
    if (status != NULL) {
        expect(status->state == OD_SYNC_STOPPED, "stopped, got %u", (unsigned)status->state);
        api->sync_status_free(status);
    }
    expect(host->sync_progress_events == 0, "no progress without a service");
    printf("sync stopped after %d state event(s)\n", host->sync_state_events);
}

/* ------------------------------------------------------------ the run */

static void run(const od_plugin_api *api, host_state *host, const char *service_url,
                const char *data_dir) {
    od_host_api table;
    memset(&table, 0, sizeof table);
    table.struct_size = sizeof table;
    table.abi_major = OD_VERSION_MAJOR;
    table.abi_minor = OD_VERSION_MINOR;
    table.user_data = host;
    table.user_data_free = host_user_data_free;
    table.log = host_log;
    table.log_level = OD_LOG_LEVEL_INFO;
    table.request = host_request;
    table.request_pump = host_request_pump;
    table.on_event = host_on_event;
    table.data_dir = data_dir;
    table.trace_log_path = NULL;
    table.trace_log_level = OD_LOG_LEVEL_OFF;
    table.service_url = service_url;

    od_plugin *plugin = NULL;
    od_result result = api->plugin_new(&table, &plugin);
    if (result != OD_RESULT_OK) {
        char *message = read_message(api, NULL, last_error_of);
        expect(0, "od_plugin_new: %s: %s", api->result_text(result),
               message != NULL ? message : "(no message)");
        free(message);
        return;
    }
    printf("plugin created\n");

    /* The licence check, rule by rule. */
    od_licence_report *report = NULL;
    result = api->plugin_check_licence(plugin, &report);
    expect(result == OD_RESULT_OK && report != NULL, "od_plugin_check_licence: %s",
           api->result_text(result));
    if (report != NULL) {
        expect(report->struct_size >= sizeof(od_licence_report), "the report is complete");
        printf("licence: %s, number %s, holder %s, tier %s, until %s, %u online users\n",
               report->ok ? "ok" : "NOT ok",
               report->licence_number ? report->licence_number : "(none)",
               report->licensee_name ? report->licensee_name : "(none)",
               report->tier ? report->tier : "(none)",
               report->agreement_valid_until ? report->agreement_valid_until : "(none)",
               (unsigned)report->online_users);
        for (size_t i = 0; i < report->rule_count; i++) {
            const od_licence_rule *rule = report->rules[i];
            printf("rule %s: %s - %s\n", rule->id, rule->passed ? "passed" : "FAILED",
                   rule->detail);
            expect(rule->passed, "licence rule %s passes", rule->id);
        }
        for (size_t i = 0; i < report->module_count; i++) {
            printf("module %s: %s\n", report->modules[i]->id, report->modules[i]->title);
        }
        expect(report->ok, "the licence check passes");
        expect(report->rule_count == 8, "8 licence rules, got %zu", report->rule_count);
        expect(report->module_count > 0, "modules are granted");
        expect(report->licence_number != NULL &&
                   strcmp(report->licence_number, LICENCE_NUMBER) == 0,
               "licence " LICENCE_NUMBER);
        api->licence_report_free(report);
    }

    /* The prerequisites; the reachability row may start PENDING. */
    od_prerequisite_list *list = NULL;
    result = api->plugin_check_prerequisites(plugin, 0, &list);
    expect(result == OD_RESULT_OK && list != NULL, "od_plugin_check_prerequisites: %s",
           api->result_text(result));
    if (list == NULL) {
        api->plugin_free(plugin);
        return;
    }
    print_prerequisites(list);
    while (host->events == 0) {
        if (!wait_for_pump_request(host, PUMP_WAIT_SECONDS)) {
            expect(0, "request_pump within %d s", PUMP_WAIT_SECONDS);
            break;
        }
        printf("pump requested; pumping on the UI thread\n");
        result = api->plugin_pump(plugin);
        expect(result == OD_RESULT_OK, "od_plugin_pump: %s", api->result_text(result));
        api->prerequisite_list_free(list);
        list = NULL;
        result = api->plugin_check_prerequisites(plugin, 0, &list);
        expect(result == OD_RESULT_OK && list != NULL, "od_plugin_check_prerequisites again");
        if (list == NULL) {
            break;
        }
        print_prerequisites(list);
    }
    if (list != NULL) {
        check_final_prerequisites(list, service_url);
        api->prerequisite_list_free(list);
    }
    expect(host->events == 1, "one event, got %d", host->events);
    expect(host->events_off_ui_thread == 0, "events arrive on the UI thread only");
    pthread_mutex_lock(&host->lock);
    expect(host->pump_requests >= 1, "the plugin asked for a pump");
    expect(host->pump_requests_on_ui_thread == 0, "request_pump comes from a plugin thread");
    expect(host->log_records > 0, "log records arrive");
    pthread_mutex_unlock(&host->lock);

    /* A failed call on the handle: the code, and the message by handle. */
    od_prerequisite_list *untouched = NULL;
    result = api->plugin_check_prerequisites(plugin, 0x80, &untouched);
    expect(result == OD_RESULT_INVALID_ARGUMENT && untouched == NULL,
           "unknown flags are refused without output");
    char *message = read_message(api, plugin, errmsg_of);
    printf("unknown flags: %s: %s\n", api->result_text(result),
           message != NULL ? message : "(no message)");
    expect(message != NULL && strstr(message, "0x80") != NULL, "the message names the flags");
    free(message);

    run_sync(api, plugin, host, service_url);

    result = api->plugin_free(plugin);
    expect(result == OD_RESULT_OK, "od_plugin_free: %s", api->result_text(result));
    expect(host->user_data_frees == 1, "user_data_free once, got %d", host->user_data_frees);
    printf("plugin freed; user_data_free called %d time(s)\n", host->user_data_frees);
}

int main(int argc, char **argv) {
    const char *library_path = argc > 1 ? argv[1] : NULL;
    const char *licence_path = argc > 2 ? argv[2] : getenv("OD_LICENCE_FILE");
    const char *service_url = argc > 3 ? argv[3] : getenv("OD_SERVICE_URL");
    const char *data_dir = argc > 4 ? argv[4] : getenv("OD_DATA_DIR");
    if (library_path == NULL || licence_path == NULL || service_url == NULL ||
        data_dir == NULL) {
        fprintf(stderr, "usage: %s <plugin-library> <licence-file> <service-url> <data-dir>\n",
                argv[0]);
        return 2;
    }

    char *document = read_file(licence_path);
    if (document == NULL) {
        fprintf(stderr, "cannot read the licence file %s\n", licence_path);
        return 2;
    }
    host_state host;
    memset(&host, 0, sizeof host);
    host.ui_thread = pthread_self();
    pthread_mutex_init(&host.lock, NULL);
    pthread_cond_init(&host.pump_wanted, NULL);
    host.licence_answer = licence_answer(document);
    free(document);
    if (host.licence_answer == NULL) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }

    void *library = dlopen(library_path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        fprintf(stderr, "cannot load %s: %s\n", library_path, dlerror());
        free(host.licence_answer);
        return 2;
    }
    void *symbol = dlsym(library, "od_entry");
    entry_fn entry = NULL;
    memcpy(&entry, &symbol, sizeof entry);
    expect(entry != NULL, "the library exports od_entry");

    if (entry != NULL) {
        /* A host of another major version is refused... */
        const od_plugin_api *api = NULL;
        od_result refused = entry(OD_VERSION_MAJOR + 1, 0, &api);
        expect(refused == OD_RESULT_ABI_VERSION && api == NULL,
               "od_entry refuses ABI %d", OD_VERSION_MAJOR + 1);
        /* ...this one is not. */
        od_result result = entry(OD_VERSION_MAJOR, OD_VERSION_MINOR, &api);
        expect(result == OD_RESULT_OK && api != NULL, "od_entry accepts ABI %d.%d",
               OD_VERSION_MAJOR, OD_VERSION_MINOR);
        if (api != NULL) {
            char *message = read_message(api, NULL, last_error_of);
            printf("od_entry for ABI %d: %s: %s\n", OD_VERSION_MAJOR + 1,
                   api->result_text(refused), message != NULL ? message : "(no message)");
            expect(message != NULL && message[0] != '\0', "the refusal explains itself");
            free(message);

            char header_version[64];
            snprintf(header_version, sizeof header_version, "%d.%d.%d", OD_VERSION_MAJOR,
                     OD_VERSION_MINOR, OD_VERSION_PATCH);
            printf("plugin %s, ABI %u.%u.%u; header %s\n", api->version_string(),
                   (unsigned)api->abi_major, (unsigned)api->abi_minor,
                   (unsigned)api->abi_patch, header_version);
            expect(api->struct_size >= sizeof(od_plugin_api),
                   "the table has every entry of ABI %d.%d", OD_VERSION_MAJOR, OD_VERSION_MINOR);
            expect(api->abi_major == OD_VERSION_MAJOR, "same major version");
            expect(strcmp(api->version_string(), header_version) == 0,
                   "the plugin and the header agree on the version");
            if (api->struct_size >= sizeof(od_plugin_api) && api->abi_major == OD_VERSION_MAJOR) {
                run(api, &host, service_url, data_dir);
            }
        }
    }

    expect(dlclose(library) == 0, "dlclose: %s", dlerror());
    free(host.licence_answer);
    pthread_cond_destroy(&host.pump_wanted);
    pthread_mutex_destroy(&host.lock);

    if (failed_expectations > 0) {
        printf("%d expectation(s) failed\n", failed_expectations);
        return 1;
    }
    printf("all expectations held\n");
    return 0;
}
