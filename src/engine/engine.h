/* engine.h (internal) - how devices and the record layer hand jobs to the engine, run one
 * synchronously, and make the n-th job fail (tests). Settings and counters are public, in
 * include/ulpo/engine.h. */
#ifndef ULPO_ENGINE_ENGINE_H
#define ULPO_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include <ulpo/device.h>
#include <ulpo/engine.h>

/* Most worker threads the engine runs (ULPO_WORKERS and set_config above it: -EINVAL). */
#define ULPO_ENGINE_MAX_WORKERS 256

/* Queue a job; never waits for a job to run. Callable from any thread, including from a
 * complete() callback (a re-submit from there is queued, not run on that stack).
 *  - async mode: the job runs on a worker thread (or on a thread that lends its CPU
 *    through ulpo_engine_help) and job->complete(job) is called there, never inside this
 *    call; completion order across jobs is not guaranteed.
 *  - inline mode: the job runs on the caller's thread and complete() has been called
 *    before this returns.
 * Returns 0 when the job was accepted: complete() will then run exactly once, with
 * job->result 0 or a negative errno (-EBADMSG: tag mismatch on OPEN). Negative errno when
 * it was not accepted (no callback): -EINVAL (no job, no complete(), unknown op), -ENOMEM,
 * -EAGAIN (no worker thread could be started).
 * Lifetime: from submit until complete() is called the engine owns the job: the submitter
 * keeps the job, its iovec arrays, buffers, tag, and aead context alive and unchanged, and
 * does not use that aead context for anything else (a context is one thread at a time: key
 * one per job that may be in flight). complete() runs on a worker: it must publish the
 * result to whoever waits with a release store or a lock, and may free the job. */
int ulpo_engine_submit(struct ulpo_job *job);

/* Run the oldest queued job on the calling thread, if there is one (true). A thread about
 * to sleep until its jobs complete lends its CPU instead: on a machine with few cores the
 * sleep and the wakeup cost more than the job. The job's complete() then runs on this
 * thread, outside any submit call; callers must hold no lock a complete() may wait for
 * (the record layer's completions only trylock, and never wait: work in flight holds a
 * socket reference, so a completion that drops the last one finds nothing to wait for). */
bool ulpo_engine_help(void);
/* True on the engine's workers and the device's work thread: the threads that do an
 * offloaded connection's protocol work (never an application thread). */
extern __thread bool ulpo_on_device;

/* Changes in a child after fork(): jobs queued or running before it will never complete
 * there (the child has no copy of the parent's workers). */
unsigned int ulpo_engine_fork_gen(void);

/* The mode new jobs get, without the settings lock (hot path). A job flagged
 * ULPO_JOB_F_INLINE runs on the submitter's thread in any mode. */
enum ulpo_engine_mode ulpo_engine_mode(void);

/* Do a job's work on the calling thread and set job->result (and job->crc for CRC32C);
 * does not call complete(). CRC32C: job->crc in is the standard CRC32C of the bytes before
 * src (0 to start), out is that of those bytes followed by src[]. */
void ulpo_engine_run(struct ulpo_job *job);

/* Test hook: the n-th job submitted from now (1 = the next) completes with result `err`
 * (a negative errno; a positive one is negated) without running. Jobs are counted across
 * all threads, in the order they reach the engine. n = 0 disarms. */
void ulpo_engine_fail_nth(uint64_t n, int err);

#endif
