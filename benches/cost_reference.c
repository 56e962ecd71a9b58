// The C reference for `cargo bench`'s cost rows: what the kernel itself needs for a fork
// (+ _exit + waitpid), a thread (pthread_create + join) and a pipe round trip to a forked
// echo child, from a small single-threaded process, timed as mp-demo's cost lesson
// times them (best of two tries a round, median of the rounds). Prints JSON, in µs.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static void *nothing(void *a) { return a; }
static double median(double *v, int n) { qsort(v, n, sizeof *v, cmp); return v[n / 2]; }
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    double f[1000], t[1000], p[1000];
    int to[2], from[2];
    if (pipe(to) || pipe(from)) return 1;
    pid_t echo = fork();
    if (echo == 0) { char c; close(to[1]); while (read(to[0], &c, 1) == 1) if (write(from[1], &c, 1) != 1) _exit(1); _exit(0); }
    close(to[0]); close(from[1]);
    for (int r = 0; r < rounds; r++) {
        double bf = 1e18, bt = 1e18, bp = 1e18;
        for (int k = 0; k < 2; k++) {
            double t0 = now_us(); pid_t c = fork(); if (c == 0) _exit(0); waitpid(c, 0, 0); double d = now_us() - t0; if (d < bf) bf = d;
            pthread_t th; t0 = now_us(); pthread_create(&th, 0, nothing, 0); pthread_join(th, 0); d = now_us() - t0; if (d < bt) bt = d;
            char ch = 'x'; t0 = now_us(); if (write(to[1], &ch, 1) != 1 || read(from[0], &ch, 1) != 1) return 1; d = now_us() - t0; if (d < bp) bp = d;
        }
        f[r] = bf; t[r] = bt; p[r] = bp;
    }
    close(to[1]); waitpid(echo, 0, 0);
    printf("{\"fork_us\": %.1f, \"thread_us\": %.1f, \"pipe_roundtrip_us\": %.1f}\n", median(f, rounds), median(t, rounds), median(p, rounds));
    return 0;
}
