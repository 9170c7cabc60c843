// SPDX-License-Identifier: MPL-2.0
//! Locks that outlive a panic. Whatever the crate keeps under a mutex (settings, element
//! state, job queues whose work runs outside the lock) is still consistent when a thread
//! panicked while holding it, so poisoning is not an error anywhere here.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, poisoned or not.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar` with `guard`, poisoned or not.
pub fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}
