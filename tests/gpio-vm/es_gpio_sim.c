// SPDX-License-Identifier: GPL-2.0
/*
 * es_gpio_sim: a tiny simulated GPIO chip for testing edgestream's status LED
 * and privacy button through the real GPIO character device, on kernels
 * built without gpio-sim and gpio-mockup (Debian's amd64 kernel).
 *
 * 32 lines. debugfs (/sys/kernel/debug/es-gpio-sim):
 *   levels  read: one character per line, the level on the pin: the driven
 *           value for an output, the simulated outside level for an input
 *   input   write "LINE LEVEL": set the outside level seen by an input line
 */
#include <linux/module.h>
#include <linux/gpio/driver.h>
#include <linux/debugfs.h>
#include <linux/spinlock.h>
#include <linux/bitmap.h>
#include <linux/uaccess.h>

#define NLINES 32

static DEFINE_SPINLOCK(lock);
static DECLARE_BITMAP(is_input, NLINES);
static DECLARE_BITMAP(driven, NLINES);
static DECLARE_BITMAP(outside, NLINES);
static struct dentry *dir;

static int sim_get_direction(struct gpio_chip *gc, unsigned int off)
{
	return test_bit(off, is_input) ? GPIO_LINE_DIRECTION_IN : GPIO_LINE_DIRECTION_OUT;
}

static int sim_direction_input(struct gpio_chip *gc, unsigned int off)
{
	unsigned long flags;

	spin_lock_irqsave(&lock, flags);
	set_bit(off, is_input);
	spin_unlock_irqrestore(&lock, flags);
	return 0;
}

static int sim_direction_output(struct gpio_chip *gc, unsigned int off, int val)
{
	unsigned long flags;

	spin_lock_irqsave(&lock, flags);
	clear_bit(off, is_input);
	assign_bit(off, driven, val);
	spin_unlock_irqrestore(&lock, flags);
	return 0;
}

static int sim_get(struct gpio_chip *gc, unsigned int off)
{
	return test_bit(off, is_input) ? test_bit(off, outside) : test_bit(off, driven);
}

static void sim_set(struct gpio_chip *gc, unsigned int off, int val)
{
	unsigned long flags;

	spin_lock_irqsave(&lock, flags);
	assign_bit(off, driven, val);
	spin_unlock_irqrestore(&lock, flags);
}

static struct gpio_chip chip = {
	.label = "es-gpio-sim",
	.owner = THIS_MODULE,
	.base = -1,
	.ngpio = NLINES,
	.can_sleep = false,
	.get_direction = sim_get_direction,
	.direction_input = sim_direction_input,
	.direction_output = sim_direction_output,
	.get = sim_get,
	.set = sim_set,
};

static ssize_t levels_read(struct file *f, char __user *buf, size_t len, loff_t *pos)
{
	char s[NLINES + 1];
	int i;

	for (i = 0; i < NLINES; i++)
		s[i] = '0' + sim_get(&chip, i);
	s[NLINES] = '\n';
	return simple_read_from_buffer(buf, len, pos, s, sizeof(s));
}

static ssize_t input_write(struct file *f, const char __user *buf, size_t len, loff_t *pos)
{
	char s[32];
	unsigned int line, level;
	unsigned long flags;

	if (len >= sizeof(s))
		return -EINVAL;
	if (copy_from_user(s, buf, len))
		return -EFAULT;
	s[len] = 0;
	if (sscanf(s, "%u %u", &line, &level) != 2 || line >= NLINES || level > 1)
		return -EINVAL;
	spin_lock_irqsave(&lock, flags);
	assign_bit(line, outside, level);
	spin_unlock_irqrestore(&lock, flags);
	return len;
}

static const struct file_operations levels_fops = {
	.owner = THIS_MODULE,
	.read = levels_read,
};

static const struct file_operations input_fops = {
	.owner = THIS_MODULE,
	.write = input_write,
};

static int __init sim_init(void)
{
	int ret;

	bitmap_fill(is_input, NLINES);
	ret = gpiochip_add_data(&chip, NULL);
	if (ret)
		return ret;
	dir = debugfs_create_dir("es-gpio-sim", NULL);
	debugfs_create_file("levels", 0444, dir, NULL, &levels_fops);
	debugfs_create_file("input", 0200, dir, NULL, &input_fops);
	return 0;
}

static void __exit sim_exit(void)
{
	debugfs_remove_recursive(dir);
	gpiochip_remove(&chip);
}

module_init(sim_init);
module_exit(sim_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Simulated GPIO chip for edgestream tests");
