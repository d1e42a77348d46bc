/* SPDX-License-Identifier: MIT */
#pragma once

/* Intrusive doubly-linked lists, as systemd's list.h: an item carries name_prev and
 * name_next (LIST_FIELDS), the head is a pointer to the first item. */

#define LIST_FIELDS(type, name) type *name##_prev, *name##_next

#define LIST_PREPEND(name, head, item)                                  \
        do {                                                            \
                __typeof__(*(head)) **_head = &(head), *_item = (item); \
                _item->name##_prev = NULL;                              \
                _item->name##_next = *_head;                            \
                if (_item->name##_next)                                 \
                        _item->name##_next->name##_prev = _item;        \
                *_head = _item;                                         \
        } while (0)

#define LIST_REMOVE(name, head, item)                                            \
        do {                                                                     \
                __typeof__(*(head)) **_head = &(head), *_item = (item);          \
                if (_item->name##_next)                                          \
                        _item->name##_next->name##_prev = _item->name##_prev;    \
                if (_item->name##_prev)                                          \
                        _item->name##_prev->name##_next = _item->name##_next;    \
                else                                                             \
                        *_head = _item->name##_next;                             \
                _item->name##_prev = _item->name##_next = NULL;                  \
        } while (0)
