/* The perf floor in C: the agent's perf reads and nothing else, one read() of each group
 * leader per pass, on the very descriptors the agent opened (inherited from it).
 *
 * usage: perf_floor LIST PASSES   LIST: one "fd size" line per group leader; prints the CPU
 *                                 seconds of each pass, one per line
 *        perf_floor --tick MS     a task for the benchmark's cgroups: wakes up every MS
 *                                 milliseconds (so its counter groups run), does nothing else
 * Only the passes are timed (CLOCK_PROCESS_CPUTIME_ID: user + system time of this process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char buf[65536];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int tick(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    for (;;)
        nanosleep(&ts, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--tick") == 0)
        return tick(atol(argv[2]));
    if (argc != 3) {
        fprintf(stderr, "usage: %s LIST PASSES | --tick MS\n", argv[0]);
        return 2;
    }
    FILE *list = fopen(argv[1], "r");
    if (!list) {
        perror(argv[1]);
        return 1;
    }
    size_t count = 0, capacity = 1024;
    int *fds = malloc(capacity * sizeof *fds);
    size_t *sizes = malloc(capacity * sizeof *sizes);
    int fd;
    size_t size;
    while (fscanf(list, "%d %zu", &fd, &size) == 2) {
        if (count == capacity) {
            capacity *= 2;
            fds = realloc(fds, capacity * sizeof *fds);
            sizes = realloc(sizes, capacity * sizeof *sizes);
        }
        if (size > sizeof buf) {
            fprintf(stderr, "read size %zu too large\n", size);
            return 1;
        }
        fds[count] = fd;
        sizes[count++] = size;
    }
    fclose(list);
    long passes = atol(argv[2]);
    for (long p = 0; p < passes; p++) {
        double started = now();
        for (size_t i = 0; i < count; i++) {
            if (read(fds[i], buf, sizes[i]) != (ssize_t)sizes[i]) {
                perror("read");
                return 1;
            }
        }
        printf("%.9f\n", now() - started);
    }
    return 0;
}
