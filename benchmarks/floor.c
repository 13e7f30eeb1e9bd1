/* The floor in C: opens and reads each listed file (to EOF) and closes it, once per pass.
 * usage: floor FILE_LIST PASSES; prints the CPU seconds of each pass, one per line.
 * Only the passes are timed (CLOCK_PROCESS_CPUTIME_ID: user + system time of this process). */
#include <fcntl.h>
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

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s FILE_LIST PASSES\n", argv[0]);
        return 2;
    }
    FILE *list = fopen(argv[1], "r");
    if (!list) {
        perror(argv[1]);
        return 1;
    }
    size_t count = 0, capacity = 1024;
    char **paths = malloc(capacity * sizeof *paths);
    char line[4096];
    while (fgets(line, sizeof line, list)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0])
            continue;
        if (count == capacity)
            paths = realloc(paths, (capacity *= 2) * sizeof *paths);
        paths[count++] = strdup(line);
    }
    fclose(list);
    long passes = atol(argv[2]);
    for (long p = 0; p < passes; p++) {
        double started = now();
        for (size_t i = 0; i < count; i++) {
            int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) == (ssize_t)sizeof buf)
                ;
            close(fd);
        }
        printf("%.9f\n", now() - started);
    }
    return 0;
}
