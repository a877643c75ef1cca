/*
 * py_compat.h - the few C-API pieces that differ between CPython 3.10 and
 * 3.15, in one place so the binding reads the same on every version.
 */
#ifndef TD_PY_COMPAT_H
#define TD_PY_COMPAT_H

#include <Python.h>

/* Type flags that older versions lack, as 0 there: an immutable type
 * (3.10+), and one that Python code cannot instantiate (3.10+; before, the
 * type's own tp_new refuses). */
#ifdef Py_TPFLAGS_IMMUTABLETYPE
#define TD_TPFLAGS_IMMUTABLE Py_TPFLAGS_IMMUTABLETYPE
#else
#define TD_TPFLAGS_IMMUTABLE 0
#endif
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
#define TD_TPFLAGS_NO_INSTANCES Py_TPFLAGS_DISALLOW_INSTANTIATION
#else
#define TD_TPFLAGS_NO_INSTANCES 0
#endif

#if PY_VERSION_HEX < 0x030D0000
/* 3.13's: *result is a new reference, or NULL (return 0) when the
 * attribute does not exist; -1 with an exception for any other error. */
static inline int PyObject_GetOptionalAttrString(PyObject *obj,
                                                 const char *name,
                                                 PyObject **result)
{
    *result = PyObject_GetAttrString(obj, name);
    if (*result != NULL) {
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}
#endif

/*
 * Takes the raised exception as one normalised object with its traceback
 * attached (NULL if none is set), and clears it.  3.12 has this built in;
 * before, it is three values to fetch and normalise.
 */
static inline PyObject *td_fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

#endif /* TD_PY_COMPAT_H */
