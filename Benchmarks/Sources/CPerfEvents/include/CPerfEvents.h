// Whether this machine lets a process count its own instructions with perf events (virtual
// machines without a virtual PMU, and strict perf_event_paranoid settings, do not).
#ifndef CPERFEVENTS_H
#define CPERFEVENTS_H

/// 1 if a hardware instructions counter can be opened for this process, 0 otherwise.
int perf_events_can_count_instructions(void);

#endif
