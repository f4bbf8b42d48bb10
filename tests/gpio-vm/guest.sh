#!/bin/sh
# Runs inside the vivid VM (see run.sh): loads the simulated GPIO chip, runs
# edgestream with its status LED on line 17 and privacy button on line 27,
# reads the LED pin's level while pressing the button, and checks what it
# sees. Prints "GPIOTEST ..." lines; exits 0 only if every check passed.
D=/sys/kernel/debug/es-gpio-sim
ES=/payload/edgestream
failed=0
say() { echo "GPIOTEST $*"; }
check() {  # description, then a shell condition
  what=$1; shift
  if "$@"; then say "ok: $what"; else say "FAIL: $what"; failed=1; fi
}
insmod /payload/es_gpio_sim.ko || { say "FAIL: insmod"; exit 1; }
mount -t debugfs none /sys/kernel/debug
say "chips: $(ls /dev/gpiochip*)"

led() { cut -c18 $D/levels; }            # the level on line 17, the LED pin
sample() {                               # $1 readings, about 50 ms apart
  s=""; i=0
  while [ $i -lt "$1" ]; do s="$s$(led)"; usleep 50000; i=$((i + 1)); done
  echo "$s"
}
only() { [ -z "$(echo "$2" | tr -d "$1")" ]; }          # only char $1 in $2
count() { echo "$2" | tr -cd "$1" | wc -c; }             # how many $1 in $2
press() { echo "27 1" >$D/input; usleep 300000; echo "27 0" >$D/input; }
wait_log() {  # pattern, seconds
  i=0
  while ! grep -q "$1" /tmp/es.log; do
    usleep 100000; i=$((i + 1))
    if [ $i -gt $(($2 * 10)) ]; then say "log lacks '$1':"; cat /tmp/es.log; return 1; fi
  done
  return 0
}

# Starting: a source that has sent its header but no frame yet.
mkfifo /tmp/cam.y4m
$ES --source /tmp/cam.y4m --led gpiochip0:17 2>/tmp/es.log &
pid=$!
exec 3>/tmp/cam.y4m
echo "YUV4MPEG2 W160 H120 F10:1 Ip C420jpeg" >&3
wait_log "streaming" 60
s=$(sample 40); say "starting: $s"
check "starting flickers" [ "$(count 1 "$s")" -ge 8 -a "$(count 0 "$s")" -ge 8 ]
exec 3>&-
wait $pid; check "exit 0 at the end of the source" [ $? = 0 ]
check "LED off after exit" [ "$(led)" = 0 ]

run() {  # LED spec, lit level, dark level
  say "=== --led $1 --button gpiochip0:27"
  $ES --size 320x240 --fps 10 --led "$1" --button gpiochip0:27 2>/tmp/es.log &
  pid=$!
  wait_log "streaming" 60
  sleep 2
  c=$(grep -c "edgestream" /sys/kernel/debug/gpio)
  check "both lines held by edgestream ($c)" [ "$c" = 2 ]
  s=$(sample 40); say "streaming: $s"
  check "streaming: steady on" only "$2" "$s"
  press
  wait_log "privacy pause on" 5 && check "button: privacy on" true
  s=$(sample 80); say "privacy: $s"
  n=$(count "$2" "$s")
  check "privacy: short flashes, mostly dark ($n of 80 lit)" [ "$n" -ge 1 -a "$n" -le 10 ]
  press
  wait_log "privacy pause off" 5 && check "button: privacy off" true
  s=$(sample 20); say "streaming again: $s"
  check "streaming again: steady on" only "$2" "$s"
  kill -TERM $pid; wait $pid; check "exit 0 on SIGTERM" [ $? = 0 ]
  check "LED off after exit" [ "$(led)" = "$3" ]
}
run gpiochip0:17 1 0
run gpiochip0:17:active-low 0 1
if [ $failed = 0 ]; then say "PASS"; else say "FAILED"; fi
exit $failed
