"""ALCOR (paper 004, Behmandpoor et al.): per-user minimum-rate demands met on average by
time sharing on top of any unconstrained resource allocator (URA) used as a black box.

Rooms: :mod:`node.alcor` (activation probabilities, the user-selection vector, Algorithm 1
and its simpler variant, centralized and per-user; in ``node`` because a link node runs
the per-user half), :mod:`channel_server.demands` (demand schedules, fixed or drawn: part
of a scenario), :mod:`.metrics` (violation (12), recovery after a demand change),
:mod:`.track` (what every kind's recorder keeps of a run's demands: the violation column,
the phases), :mod:`.channels`
(slot-indexed gain streams: the Gaussian interference channel and the paper's 7-cell
layout), :mod:`.run` (ALCOR and its baselines over a stream of slots), :mod:`.penalty_dnn`
(the fixed DNN trained with the penalty reward (10); needs torch) and :mod:`.constrained`
(the per-instance rate-constrained optimum). All pure: no sockets, no event loop; every
random number comes from a generator the caller passes in.
"""
