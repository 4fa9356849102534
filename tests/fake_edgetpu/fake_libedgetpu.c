/* A stand-in libedgetpu for tests: the TFLite external-delegate entry points, nothing of a TPU.
 *
 * ai-edge-litert's load_delegate(path, options) dlopens this file and calls
 * tflite_plugin_create_delegate(keys, values, n, report_error), then tflite_plugin_destroy_delegate.
 * What the delegate does is chosen at each call by FAKE_EDGETPU_MODE, or by the first word of the file
 * FAKE_EDGETPU_MODE_FILE when that is set (so a test can change it while the appliance runs):
 *   works (default)  Prepare claims no nodes: the CPU runs the whole model, results are the CPU's
 *   fail             create returns NULL (the runtime raises ValueError: as a missing device does)
 *   segv             Prepare raises SIGSEGV (as libedgetpu built for another TensorFlow does)
 *   abort            Prepare calls abort() (libedgetpu's fatal logging on a USB fault)
 *   hang             Prepare never returns
 * FAKE_EDGETPU_AT=create makes segv, abort and hang happen when the delegate is created instead of in
 * Prepare (this runtime rejects a compiled model's edgetpu-custom-op before any delegate's Prepare).
 * FAKE_EDGETPU_LOG, when set, is a file each call appends one line to (so tests see it was used).
 * The struct layout is TfLiteDelegate's: data_, Prepare, CopyFromBufferHandle, CopyToBufferHandle,
 * FreeBufferHandle, flags (and newer fields we leave zero: the struct is over-allocated).
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int TfLiteStatus; /* kTfLiteOk = 0 */

typedef struct FakeDelegate {
    void* data_;
    TfLiteStatus (*Prepare)(void* context, struct FakeDelegate* delegate);
    void* CopyFromBufferHandle;
    void* CopyToBufferHandle;
    void* FreeBufferHandle;
    int64_t flags;
    void* spare[16];
} FakeDelegate;

static const char* mode(void) {
    static char from_file[32];
    const char* path = getenv("FAKE_EDGETPU_MODE_FILE");
    if (path && *path) {
        FILE* f = fopen(path, "r");
        if (f) {
            int ok = fscanf(f, "%31s", from_file) == 1;
            fclose(f);
            if (ok) return from_file;
        }
    }
    const char* m = getenv("FAKE_EDGETPU_MODE");
    return m && *m ? m : "works";
}

static void misbehave(const char* where) {
    const char* at = getenv("FAKE_EDGETPU_AT");
    if (strcmp(at && *at ? at : "prepare", where) != 0) return;
    const char* m = mode();
    if (strcmp(m, "segv") == 0) raise(SIGSEGV);
    if (strcmp(m, "abort") == 0) abort();
    if (strcmp(m, "hang") == 0) for (;;) pause();
}

static void note(const char* what) {
    const char* path = getenv("FAKE_EDGETPU_LOG");
    if (!path || !*path) return;
    FILE* f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s %s pid=%d\n", what, mode(), (int)getpid());
    fclose(f);
}

static TfLiteStatus prepare(void* context, FakeDelegate* delegate) {
    (void)context;
    (void)delegate;
    note("prepare");
    misbehave("prepare");
    return 0; /* claim no nodes: the CPU kernels run everything */
}

FakeDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
                                            void (*report_error)(const char*)) {
    (void)keys;
    (void)values;
    (void)n;
    note("create");
    misbehave("create");
    if (strcmp(mode(), "fail") == 0) {
        if (report_error) report_error("fake libedgetpu: failed to open the Edge TPU (FAKE_EDGETPU_MODE=fail)");
        return NULL;
    }
    FakeDelegate* d = calloc(1, sizeof(FakeDelegate));
    if (d) d->Prepare = prepare;
    return d;
}

void tflite_plugin_destroy_delegate(FakeDelegate* delegate) {
    note("destroy");
    free(delegate);
}
