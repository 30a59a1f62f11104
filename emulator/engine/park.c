/* The parking step of a runtime process with Lambda's paths (process.py's park, lambda_paths.py's mounts), as an
 * executable: it gives itself the parent-death signal, joins its cgroups, enters a private mount namespace with the
 * code on /var/task and the layers on /opt, and execs the waiting shell. Python's preexec_fn would do
 * the same in a fork of the whole emulator (3-15 ms of page tables copied, the GIL held throughout); exec'd through
 * a vfork, this costs a fraction of a millisecond. The program it execs (the waiting shell) says "parked" itself.
 *
 *   park PARENT_PID [-c CGROUP_PROCS]... [-m CODE_DIR [-l LAYER]...] -- PROGRAM [ARG]...
 *
 * Layers are given in extraction order: one is bound on /opt, several are a read-only overlay (the last on top),
 * none is an empty read-only tmpfs. On a failure it writes "park: STEP: REASON" to stdout and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#define MAX_LAYERS 64

static void fail(const char *step) {
    dprintf(1, "park: %s: %s\n", step, strerror(errno));
    _exit(1);
}

int main(int argc, char **argv) {
    const char *layers[MAX_LAYERS];
    const char *code = NULL;
    int n_layers = 0;
    int i;

    if (argc < 2) {
        errno = EINVAL;
        fail("usage");
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("prctl");
    if (getppid() != (pid_t)atol(argv[1])) _exit(1); /* the emulator died before the signal was set */
    for (i = 2; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (i + 1 >= argc) {
            errno = EINVAL;
            fail("usage");
        }
        if (strcmp(argv[i], "-c") == 0) { /* "0" is the writing process; its exec keeps the cgroup */
            int fd = open(argv[i + 1], O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, "0", 1) != 1) fail(argv[i + 1]);
            close(fd);
        } else if (strcmp(argv[i], "-m") == 0) {
            code = argv[i + 1];
        } else if (strcmp(argv[i], "-l") == 0) {
            if (n_layers == MAX_LAYERS) {
                errno = E2BIG;
                fail("layers");
            }
            layers[n_layers++] = argv[i + 1];
        } else {
            errno = EINVAL;
            fail(argv[i]);
        }
    }
    if (i + 1 >= argc) {
        errno = EINVAL;
        fail("no program");
    }
    if (code != NULL) {
        if (unshare(CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWNS)");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("mount --make-rprivate /");
        /* The code first: it may live under the host's /opt, which the layers are about to cover. */
        if (mount(code, "/var/task", NULL, MS_BIND | MS_REC, NULL) != 0) fail("bind the code on /var/task");
        if (n_layers == 0) {
            if (mount("tmpfs", "/opt", "tmpfs", MS_RDONLY, "size=0") != 0) fail("mount tmpfs /opt");
        } else if (n_layers == 1) {
            if (mount(layers[0], "/opt", NULL, MS_BIND | MS_REC, NULL) != 0) fail("bind the layer on /opt");
        } else { /* the leftmost lower directory is the top one: the last layer extracted */
            size_t size = sizeof("lowerdir=");
            int k;
            for (k = 0; k < n_layers; k++) size += strlen(layers[k]) + 1;
            char *options = malloc(size);
            if (options == NULL) fail("malloc");
            strcpy(options, "lowerdir=");
            for (k = n_layers - 1; k >= 0; k--) {
                strcat(options, layers[k]);
                if (k > 0) strcat(options, ":");
            }
            if (mount("overlay", "/opt", "overlay", MS_RDONLY, options) != 0) fail("overlay the layers on /opt");
        }
        if (chdir("/var/task") != 0) fail("chdir /var/task");
    }
    execv(argv[i + 1], &argv[i + 1]);
    fail(argv[i + 1]);
    return 1;
}
