/* lambda-freeze's virtual clock, preloaded into a runtime (LD_PRELOAD): every clock the runtime reads runs ahead of
 * the real one by one offset, which the emulator moves forward while the runtime is frozen.
 *
 * The offset is a signed 64-bit count of nanoseconds at the start of a file the emulator names in
 * LAMBDA_FREEZE_CLOCK_FILE, mapped shared and read on every call: no cache, so the first clock call after a thaw
 * sees the new offset, at the cost of one memory load. The file is written only while the runtime is frozen.
 *
 * Realtime, monotonic and boottime clocks all move by the same offset, so an absolute deadline the runtime computed
 * from any of them is turned back into real time by subtracting it before the kernel sees the deadline
 * (clock_nanosleep, condition variables, semaphores, timed locks). A wait already blocked when the offset moves
 * ends at its real deadline, as a relative sleep does. Per-process and per-thread CPU clocks are left alone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL

static const volatile int64_t *offset_ns;  /* NULL: no file, real time */
static int (*real_clock_gettime)(clockid_t, struct timespec *);

__attribute__((constructor)) static void vclock_init(void) {
  real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
  const char *path = getenv("LAMBDA_FREEZE_CLOCK_FILE");
  if (path == NULL) return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  void *page = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (page != MAP_FAILED) offset_ns = page;
}

static inline int64_t offset(void) { return offset_ns ? *offset_ns : 0; }

static inline int shifted(clockid_t clk) {
  switch (clk) {
    case CLOCK_REALTIME: case CLOCK_REALTIME_COARSE: case CLOCK_MONOTONIC: case CLOCK_MONOTONIC_COARSE:
    case CLOCK_MONOTONIC_RAW: case CLOCK_BOOTTIME: case CLOCK_REALTIME_ALARM: case CLOCK_BOOTTIME_ALARM:
    case CLOCK_TAI:
      return 1;
    default:
      return 0;
  }
}

static inline void add_ns(struct timespec *ts, int64_t ns) {
  int64_t total = (int64_t)ts->tv_nsec + ns % NS_PER_S;
  ts->tv_sec += ns / NS_PER_S + total / NS_PER_S;
  ts->tv_nsec = total % NS_PER_S;
  if (ts->tv_nsec < 0) {
    ts->tv_nsec += NS_PER_S;
    ts->tv_sec -= 1;
  }
}

/* An absolute deadline on the runtime's clocks, as the kernel's real clocks count it. */
static inline struct timespec real_deadline(const struct timespec *abstime) {
  struct timespec deadline = *abstime;
  add_ns(&deadline, -offset());
  return deadline;
}

#define NEXT(name) static __typeof__(name) *next; if (!next) next = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

/* ------------------------------------------------------------------------------------------- reading clocks */
int clock_gettime(clockid_t clk, struct timespec *ts) {
  if (!real_clock_gettime) real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
  int result = real_clock_gettime(clk, ts);
  if (result == 0 && shifted(clk)) add_ns(ts, offset());
  return result;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
  NEXT(gettimeofday);
  int result = next(tv, tz);
  if (result == 0) {
    struct timespec ts = {tv->tv_sec, tv->tv_usec * 1000};
    add_ns(&ts, offset());
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
  }
  return result;
}

time_t time(time_t *out) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (out != NULL) *out = ts.tv_sec;
  return ts.tv_sec;
}

/* ------------------------------------------------------------------------------------ absolute deadlines */
int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem) {
  NEXT(clock_nanosleep);
  if ((flags & TIMER_ABSTIME) && shifted(clk)) {
    struct timespec deadline = real_deadline(req);
    return next(clk, flags, &deadline, rem);
  }
  return next(clk, flags, req, rem);
}

int pthread_cond_timedwait(pthread_cond_t *restrict cond, pthread_mutex_t *restrict mutex,
                           const struct timespec *restrict abstime) {
  NEXT(pthread_cond_timedwait);
  struct timespec deadline = real_deadline(abstime);
  return next(cond, mutex, &deadline);
}

int pthread_cond_clockwait(pthread_cond_t *restrict cond, pthread_mutex_t *restrict mutex, clockid_t clk,
                           const struct timespec *restrict abstime) {
  NEXT(pthread_cond_clockwait);
  struct timespec deadline = shifted(clk) ? real_deadline(abstime) : *abstime;
  return next(cond, mutex, clk, &deadline);
}

int sem_timedwait(sem_t *restrict sem, const struct timespec *restrict abstime) {
  NEXT(sem_timedwait);
  struct timespec deadline = real_deadline(abstime);
  return next(sem, &deadline);
}

int sem_clockwait(sem_t *restrict sem, clockid_t clk, const struct timespec *restrict abstime) {
  NEXT(sem_clockwait);
  struct timespec deadline = shifted(clk) ? real_deadline(abstime) : *abstime;
  return next(sem, clk, &deadline);
}

int pthread_mutex_timedlock(pthread_mutex_t *restrict mutex, const struct timespec *restrict abstime) {
  NEXT(pthread_mutex_timedlock);
  struct timespec deadline = real_deadline(abstime);
  return next(mutex, &deadline);
}

int pthread_mutex_clocklock(pthread_mutex_t *restrict mutex, clockid_t clk, const struct timespec *restrict abstime) {
  NEXT(pthread_mutex_clocklock);
  struct timespec deadline = shifted(clk) ? real_deadline(abstime) : *abstime;
  return next(mutex, clk, &deadline);
}
