# Included after CPython's own Makefile (interpreter/build.sh): the ocirun command,
# linked like CPython's `python` program from the same objects and flags, with
# interpreter/main.c as its main and ocirun/_sys.c built in.
OCIRUN_SRC ?= .

Programs/ocirun.o: $(OCIRUN_SRC)/interpreter/main.c $(PYTHON_HEADERS)
	$(CC) -c $(PY_STDMODULE_CFLAGS) -o $@ $(OCIRUN_SRC)/interpreter/main.c

Modules/ocirun_sys.o: $(OCIRUN_SRC)/ocirun/_sys.c $(PYTHON_HEADERS)
	$(CC) -c $(PY_STDMODULE_CFLAGS) -o $@ $(OCIRUN_SRC)/ocirun/_sys.c

ocirun-bin: Programs/ocirun.o Modules/ocirun_sys.o $(LINK_PYTHON_DEPS)
	$(LINKCC) $(PY_CORE_LDFLAGS) $(OCIRUN_LINKFLAGS) -o $@ Programs/ocirun.o \
		Modules/ocirun_sys.o $(LINK_PYTHON_OBJS) $(LIBS) $(MODLIBS) $(SYSLIBS)
