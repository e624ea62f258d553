/* The monotonic clock, read the one way the core measures intervals and deadlines. */
#ifndef HS_CLOCK_H
#define HS_CLOCK_H

/* Seconds on CLOCK_MONOTONIC (since an unspecified start; only differences mean anything),
 * with nanosecond resolution. Never goes back, does not jump with the wall clock. */
double hs_clock_mono(void);

#endif
